import Domain
import Projections

/// Task IDs abbreviated to any unique prefix, as git and docker allow (`tsk-3f`, or without `tsk-`: `3f`).
enum TaskIDPrefix {
    /// The one task whose ID is `given`, or starts with it (with or without the `tsk-` prefix).
    ///
    /// - Throws: ``CLIError`` for no match ("unknown task"), or an ambiguous prefix listing the matches (at most 10).
    static func resolve(_ given: String, among ids: [TaskID]) throws -> TaskID {
        if let exact = ids.first(where: { $0.rawValue == given }) { return exact }
        let matches = given.isEmpty ? [] : ids.filter { $0.rawValue.hasPrefix(given) || $0.rawValue.hasPrefix("tsk-" + given) }.sorted()
        switch matches.count {
        case 0:
            throw CLIError("unknown task \(given.debugDescription): see `touchstone task list`")
        case 1:
            return matches[0]
        default:
            let shown = matches.prefix(10).map(\.rawValue).joined(separator: ", ")
            throw CLIError(
                "task ID prefix \(given.debugDescription) is ambiguous: it matches \(matches.count) tasks (\(shown)"
                    + (matches.count > 10 ? ", …" : "") + "); give more characters")
        }
    }
}

extension TouchstoneLog {
    /// The task an operator means by `given`: its full ID or a unique prefix (``TaskIDPrefix``).
    ///
    /// - Throws: ``CLIError`` for an unknown or ambiguous ID; the log's errors.
    func resolveTask(_ given: String) async throws -> TaskID {
        let board = try await readModel(TaskBoard.self)
        return try TaskIDPrefix.resolve(given, among: board.rows.values.map(\.taskID))
    }
}
