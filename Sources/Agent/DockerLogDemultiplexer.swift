/// Splits the multiplexed stream of `GET /containers/{id}/logs` (or `attach`) of a container made without a TTY
/// into its stdout and stderr frames.
///
/// Each frame is an 8-byte header, `[stream, 0, 0, 0, size (4 bytes, big-endian)]`, followed by `size` bytes of
/// payload; stream 0 is stdin, 1 stdout, 2 stderr (Docker Engine API v1.41 reference, "Attach to a container",
/// "Stream format"). Frames may arrive split across reads: ``feed(_:)`` keeps the partial tail for the next call.
public struct DockerLogDemultiplexer: Sendable {
    /// Which output stream a frame belongs to.
    public enum Stream: UInt8, Sendable {
        case stdin = 0, stdout = 1, stderr = 2
    }

    /// One frame's payload.
    public struct Frame: Sendable, Equatable {
        public var stream: Stream
        public var bytes: [UInt8]
    }

    private var pending: [UInt8] = []

    public init() {}

    /// Adds bytes read from the stream and returns every frame now complete, in order.
    ///
    /// - Parameter bytes: The next bytes of the stream, split anywhere.
    /// - Returns: Complete frames; an unknown stream byte is treated as stdout.
    public mutating func feed(_ bytes: [UInt8]) -> [Frame] {
        pending.append(contentsOf: bytes)
        var frames: [Frame] = []
        var offset = 0
        while pending.count - offset >= 8 {
            let size =
                Int(pending[offset + 4]) << 24 | Int(pending[offset + 5]) << 16 | Int(pending[offset + 6]) << 8
                | Int(pending[offset + 7])
            guard pending.count - offset - 8 >= size else { break }
            let stream = Stream(rawValue: pending[offset]) ?? .stdout
            frames.append(Frame(stream: stream, bytes: Array(pending[(offset + 8)..<(offset + 8 + size)])))
            offset += 8 + size
        }
        pending.removeFirst(offset)
        return frames
    }

    /// The bytes of an incomplete frame still waiting for the rest (empty at the end of a well-formed stream).
    public var remainder: [UInt8] { pending }
}
