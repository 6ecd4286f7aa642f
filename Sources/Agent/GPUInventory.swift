import Domain
import Foundation
import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Reads the GPUs from `nvidia-smi`, and which of them run compute processes that are not Touchstone's.
///
/// Queries (NVIDIA's nvidia-smi documentation, `--help-query-gpu` and `--help-query-compute-apps`):
/// - `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits`
/// - `nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits`
///
/// A host without `nvidia-smi` has no GPUs (no problem reported); a driver error or output that does not parse gives
/// no GPUs and a problem string, so the backend books none there and says why.
public struct GPUInventory: Sendable {
    /// The GPUs and, when the list may be wrong or incomplete, why.
    public struct Reading: Sendable, Equatable {
        public var gpus: [GPUDevice]
        public var problem: String?
    }

    /// The command to run (found on `PATH` unless absolute).
    public var command: String

    public init(command: String = "nvidia-smi") { self.command = command }

    /// Runs both queries.
    ///
    /// - Parameter ours: Whether a PID belongs to one of our tasks (then its GPU use is ours, not foreign).
    public func read(ours: @Sendable (Int32) -> Bool) async -> Reading {
        let query = ["--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits"]
        switch await run(query) {
        case .missing:
            return Reading(gpus: [], problem: nil)
        case .failed(let problem):
            return Reading(gpus: [], problem: problem)
        case .output(let text):
            do {
                var gpus = try Self.parseGPUs(text)
                let apps = ["--query-compute-apps=gpu_uuid,pid,used_memory", "--format=csv,noheader,nounits"]
                if case .output(let listing) = await run(apps) {
                    let foreign = Self.parseComputeApps(listing).filter { !ours($0.pid) }
                    for index in gpus.indices {
                        gpus[index].foreignProcesses = foreign.filter { $0.uuid == gpus[index].uuid }.count
                    }
                }
                return Reading(gpus: gpus, problem: nil)
            } catch {
                return Reading(gpus: [], problem: error.description)
            }
        }
    }

    enum Outcome { case missing, failed(String), output(String) }

    /// The full path of the command: itself when absolute, else the first match on `PATH`.
    func resolved() -> String? {
        if command.hasPrefix("/") { return access(command, X_OK) == 0 ? command : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where access("\(directory)/\(command)", X_OK) == 0 {
            return "\(directory)/\(command)"
        }
        return nil
    }

    private func run(_ arguments: [String]) async -> Outcome {
        guard let executable = resolved() else { return .missing }
        do {
            let result = try await Subprocess.run(
                .path(FilePath(executable)), arguments: Arguments(arguments), output: .string(limit: 1 << 20),
                error: .string(limit: 1 << 16))
            guard case .exited(0) = result.terminationStatus else {
                let message = (result.standardError ?? "").split(separator: "\n").first.map(String.init) ?? ""
                return .failed("nvidia-smi failed (\(result.terminationStatus)): \(message)")
            }
            return .output(result.standardOutput ?? "")
        } catch {
            return .failed("nvidia-smi could not run: \(error)")
        }
    }

    /// Parses `--query-gpu` CSV (no header, no units). `[N/A]` and `[Not Supported]` fields become `nil`.
    ///
    /// - Throws: ``GPUParseError`` naming the line that does not have 6 fields or a valid index.
    public static func parseGPUs(_ text: String) throws(GPUParseError) -> [GPUDevice] {
        var gpus: [GPUDevice] = []
        for (number, raw) in text.split(whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 6, let index = Int(fields[0]), index >= 0, !fields[1].isEmpty else {
                throw GPUParseError(line: number + 1, text: String(line.prefix(120)))
            }
            // A number out of Int's range, NaN or infinite reads as absent: `Int(_: Double)` would trap on it (the
            // `nvidia-smi` fuzz target found `1444…4473`, fuzz/crashes/nvidia-smi/).
            func value(_ field: String) -> Int? { Int(field) ?? Double(field).flatMap { Int(exactly: $0.rounded(.towardZero)) } }
            gpus.append(
                GPUDevice(
                    index: index, uuid: fields[1], name: fields[2], memoryTotalMiB: value(fields[3]),
                    memoryUsedMiB: value(fields[4]), utilizationPercent: value(fields[5])))
        }
        return gpus
    }

    /// Parses `--query-compute-apps` CSV into (GPU UUID, PID) pairs; lines that do not parse are skipped.
    public static func parseComputeApps(_ text: String) -> [(uuid: String, pid: Int32)] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 2, let pid = Int32(fields[1]) else { return nil }
            return (fields[0], pid)
        }
    }
}

/// nvidia-smi printed something that is not the CSV asked for.
public struct GPUParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var text: String
    public var description: String { "nvidia-smi output line \(line) does not parse: \(text.debugDescription)" }
}
