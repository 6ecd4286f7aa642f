import Domain
import Foundation

/// Fixed IDs and event builders for tests.
public enum Fixtures {
    public static let gpu1 = ServerID(rawValue: "gpu-01")!
    public static let gpu2 = ServerID(rawValue: "gpu-02")!
    public static let taskA = TaskID(rawValue: "tsk-00000000000a")
    public static let taskB = TaskID(rawValue: "tsk-00000000000b")
    public static let epoch0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// Wraps a domain event in an envelope at a position, with a time derived from the position.
    public static func recorded(_ event: DomainEvent, at position: Int64, actor: String = "test")
        -> RecordedEvent<DomainEvent>
    {
        RecordedEvent(
            position: position, stream: DomainEventCodec.stream(of: event), version: position,
            recordedAt: epoch0.addingTimeInterval(Double(position)), actor: actor, event: event)
    }

    /// A minimal spec running `/bin/true`.
    public static func spec(_ command: [String] = ["/bin/true"]) -> TaskSpec { TaskSpec(command: command) }

    /// A deterministic request ID.
    public static func request(_ n: Int) -> RequestID {
        RequestID(rawValue: String(format: "00000000-0000-7000-8000-%012d", n))
    }
}
