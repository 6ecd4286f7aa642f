import Foundation

/// What an operator asked to run: a command with its environment, working files and resource needs.
public struct TaskSpec: Codable, Sendable, Equatable {
    /// A human label, e.g. `svm-c1`; not unique.
    public var name: String?
    /// The container image to run the command in (e.g. `touchstone-train:1`), for agents with the docker runtime;
    /// `nil`: the agent's default image on docker, a plain process on the process runtime. Absent from payloads
    /// written before it existed, which decode as `nil`.
    public var image: String?
    /// The program and its arguments (argv); at least one element.
    public var command: [String]
    /// Environment variables added to the agent's minimal base environment.
    public var environment: [String: String]
    /// Small files placed in the task's working directory before it starts, carried inline in the start request.
    public var files: [WorkingFile]
    /// Files of any size put into the working directory over the transfer channel before the task starts
    /// (docs/files.md); their bytes wait in the backend's input store, named by SHA-256.
    public var inputs: [InputFile]
    /// Paths, relative to the working directory, of result files collected when the task ends: inline in the task's
    /// report when at most ``maxOutputFileBytes`` of UTF-8, and into the backend's artifact store (any size, up to the
    /// transfer limit) over the transfer channel.
    public var outputs: [String]
    /// GPUs the task needs (0 for CPU-only); recorded now, enforced by the scheduler once servers report GPUs.
    public var gpus: Int
    /// Wall-clock limit in seconds, `nil` for none; 1 to ``maximumTimeoutSeconds`` (submit refuses others, and an
    /// agent holds a larger one from an older client to that maximum).
    public var timeoutSeconds: Int?
    /// The longest `--timeout`: 366 days, in seconds.
    public static let maximumTimeoutSeconds = 366 * 86_400
    /// Higher runs first; FIFO within a priority. Default 0.
    public var priority: Int
    /// The one server the task may run on (`task submit --server`); `nil`: any. Absent from payloads written before
    /// it existed, which decode as `nil`.
    public var server: ServerID?
    /// Labels a server must carry to run the task, label → value (`task submit --constraint gpu=a100`, matched
    /// against `server attach --label`); empty: none. Absent from older payloads, which decode as empty.
    public var constraints: [String: String]
    /// Environment variables whose values are sealed to the agents' keys (`task submit --secret-env`): each agent
    /// opens the ones for its server and adds them to the task's environment. Absent when empty.
    public var secrets: [SealedSecret] = []

    public init(
        name: String? = nil, command: [String], environment: [String: String] = [:], files: [WorkingFile] = [],
        outputs: [String] = [], gpus: Int = 0, timeoutSeconds: Int? = nil, priority: Int = 0, image: String? = nil,
        inputs: [InputFile] = [], server: ServerID? = nil, constraints: [String: String] = [:]
    ) {
        self.server = server
        self.constraints = constraints
        self.image = image
        self.inputs = inputs
        self.priority = priority
        self.name = name
        self.command = command
        self.environment = environment
        self.files = files
        self.outputs = outputs
        self.gpus = gpus
        self.timeoutSeconds = timeoutSeconds
    }

    enum CodingKeys: String, CodingKey {
        case name, image, command, environment, files, outputs, gpus, timeoutSeconds, priority, inputs, server
        case constraints
        case secrets
    }

    /// Decodes a spec; fields added after the first schema (`priority`, `image`, `inputs`, `server`, `constraints`)
    /// take their defaults when absent.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        image = try container.decodeIfPresent(String.self, forKey: .image)
        command = try container.decode([String].self, forKey: .command)
        environment = try container.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
        files = try container.decodeIfPresent([WorkingFile].self, forKey: .files) ?? []
        outputs = try container.decodeIfPresent([String].self, forKey: .outputs) ?? []
        gpus = try container.decodeIfPresent(Int.self, forKey: .gpus) ?? 0
        timeoutSeconds = try container.decodeIfPresent(Int.self, forKey: .timeoutSeconds)
        priority = try container.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        inputs = try container.decodeIfPresent([InputFile].self, forKey: .inputs) ?? []
        server = try container.decodeIfPresent(ServerID.self, forKey: .server)
        constraints = try container.decodeIfPresent([String: String].self, forKey: .constraints) ?? [:]
        secrets = try container.decodeIfPresent([SealedSecret].self, forKey: .secrets) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(name, forKey: .name)
        try container.encodeIfPresent(image, forKey: .image)
        try container.encode(command, forKey: .command)
        try container.encode(environment, forKey: .environment)
        try container.encode(files, forKey: .files)
        try container.encode(outputs, forKey: .outputs)
        try container.encode(gpus, forKey: .gpus)
        try container.encodeIfPresent(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(priority, forKey: .priority)
        // Absent when empty: specs without inputs encode exactly as before.
        if !inputs.isEmpty { try container.encode(inputs, forKey: .inputs) }
        try container.encodeIfPresent(server, forKey: .server)
        if !constraints.isEmpty { try container.encode(constraints, forKey: .constraints) }
        if !secrets.isEmpty { try container.encode(secrets, forKey: .secrets) }
    }

    /// The most bytes of working files one task may carry inline (they travel in one queue message).
    public static let maxInlineFileBytes = 256 * 1024
    /// The most bytes of one output file collected inline.
    public static let maxOutputFileBytes = 64 * 1024

    /// Checks the spec for mistakes an operator can fix.
    ///
    /// - Throws: ``TaskSpecError`` naming the first problem: an empty command, an unsafe path, negative GPUs,
    ///   files over ``maxInlineFileBytes`` in total.
    public func validate() throws(TaskSpecError) {
        guard let program = command.first, !program.isEmpty else {
            throw TaskSpecError("a task needs a command: nothing was given to run")
        }
        guard gpus >= 0 else { throw TaskSpecError("--gpus must be 0 or more, got \(gpus)") }
        if let image {
            guard !image.isEmpty, image.count <= 255,
                image.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && $0.value < 127 })
            else {
                throw TaskSpecError("image \(image.debugDescription) is not a valid image reference")
            }
        }
        if let timeoutSeconds, timeoutSeconds <= 0 {
            throw TaskSpecError("the timeout must be a positive number of seconds, got \(timeoutSeconds)")
        }
        var total = 0
        var seen = Set<String>()
        let paths = files.map(\.path) + inputs.map(\.path)
        for input in inputs {
            if let problem = RelativePath.problem(input.path) { throw TaskSpecError("input: " + problem) }
            guard input.size >= 0, input.sha256.utf8.count == 64 else {
                throw TaskSpecError("input \(input.path) has no valid size and SHA-256")
            }
        }
        for path in paths {
            let normalized = path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
            guard !normalized.isEmpty else {
                throw TaskSpecError("working file path \(path.debugDescription) names the directory itself, not a file")
            }
            for other in seen where other.hasPrefix(normalized + "/") || normalized.hasPrefix(other + "/") || other == normalized {
                throw TaskSpecError("working file paths \(other) and \(normalized) collide")
            }
            seen.insert(normalized)
            if let problem = RelativePath.problem(path) { throw TaskSpecError("working file: " + problem) }
        }
        for file in files { total += file.contents.count }
        guard total <= Self.maxInlineFileBytes else {
            throw TaskSpecError(
                "working files total \(total) bytes; at most \(Self.maxInlineFileBytes) bytes travel inline")
        }
        for output in outputs {
            if let problem = RelativePath.problem(output) { throw TaskSpecError("output: " + problem) }
        }
        for (key, value) in environment {
            if let problem = EnvironmentName.problem(key) { throw TaskSpecError(problem) }
            guard !value.contains("\0") else {
                throw TaskSpecError("environment variable \(key) holds a NUL byte")
            }
        }
        for argument in command where argument.contains("\0") {
            throw TaskSpecError("command argument \(argument.debugDescription) holds a NUL byte")
        }
        for (label, value) in constraints {
            if let problem = ServerLabels.problem(label: label, value: value) { throw TaskSpecError("--constraint: " + problem) }
        }
    }
}

/// Server labels (`server attach --label gpu=a100`) and the task constraints matched against them.
public enum ServerLabels {
    /// Labels: 1–63 of `a-z`, `0-9`, `.`, `_` and `-`; values: 1–255 printable ASCII characters other than `,`.
    public static let shape = "labels are 1–63 of a-z, 0-9, '.', '_' and '-'; values 1–255 printable ASCII characters"

    /// Splits `LABEL=VALUE`.
    ///
    /// - Throws: ``TaskSpecError`` naming the entry when it has no `=` or a label or value out of ``shape``.
    public static func parse(_ entry: String) throws(TaskSpecError) -> (label: String, value: String) {
        guard let equals = entry.firstIndex(of: "=") else {
            throw TaskSpecError("\(entry.debugDescription) is not LABEL=VALUE")
        }
        let label = String(entry[..<equals])
        let value = String(entry[entry.index(after: equals)...])
        if let problem = problem(label: label, value: value) { throw TaskSpecError(problem) }
        return (label, value)
    }

    /// What is wrong with a label and its value, `nil` when they fit ``shape``.
    public static func problem(label: String, value: String) -> String? {
        let labelOK =
            (1...63).contains(label.unicodeScalars.count)
            && label.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-"
            }
        let valueOK =
            (1...255).contains(value.unicodeScalars.count)
            && value.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && $0 != "," }
        guard labelOK, valueOK else { return "\(label)=\(value) does not fit: \(shape)" }
        return nil
    }
}

/// A file put into the task's working directory over the transfer channel (`task submit --input LOCAL:REMOTE`).
public struct InputFile: Codable, Sendable, Equatable {
    /// Relative path inside the working directory.
    public var path: String
    /// Bytes.
    public var size: Int64
    /// Lower-case hex SHA-256 of the content; names the blob in the backend's input store (`inputs/<sha256>`).
    public var sha256: String
    /// Whether to set the executable bits.
    public var executable: Bool

    public init(path: String, size: Int64, sha256: String, executable: Bool = false) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.executable = executable
    }
}

/// A file for the task's working directory.
public struct WorkingFile: Codable, Sendable, Equatable {
    /// Relative path inside the working directory.
    public var path: String
    /// The file's bytes (base64 in JSON).
    public var contents: Data
    /// Whether to set the executable bits.
    public var executable: Bool

    public init(path: String, contents: Data, executable: Bool = false) {
        self.path = path
        self.contents = contents
        self.executable = executable
    }
}

/// A task spec an operator must fix; the message is one line.
public struct TaskSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Checks on relative paths that must stay inside a directory.
public enum RelativePath {
    /// True when `path` is non-empty, relative, has no `..` component, no NUL byte, and fits Linux's name and path
    /// lengths; ``problem(_:)`` says which rule a path breaks.
    public static func isConfined(_ path: String) -> Bool { problem(path) == nil }
}
