import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A small client of the Docker Engine API (v1.41, Docker 20.10+) over the engine's unix socket.
///
/// Only what ``DockerRuntime`` needs: ping, image inspect and pull, container create, start, inspect, wait, list,
/// logs, stop, kill and remove. Paths, parameters and bodies follow the Docker Engine API reference, version 1.41
/// (https://docs.docker.com/engine/api/v1.41/). Every call that cannot reach the engine (no socket, refused, the
/// connection dropped) throws ``RuntimeError`` with code ``RuntimeError/Code/unreachable``; an answer with an error
/// status throws ``RuntimeError/Code/engine`` (or a more specific code) with the engine's message.
public struct DockerClient: Sendable {
    /// The API version in every path: `/v1.41/...`.
    public static let apiVersion = "v1.41"

    /// The engine's unix socket, e.g. `/var/run/docker.sock`.
    public let socketPath: String
    let httpClient: HTTPClient

    /// - Parameters:
    ///   - socketPath: The engine's unix socket.
    ///   - httpClient: The HTTP client; default ``sharedHTTPClient``, which needs no shutdown.
    public init(socketPath: String, httpClient: HTTPClient = DockerClient.sharedHTTPClient) {
        self.socketPath = socketPath
        self.httpClient = httpClient
    }

    /// The process-wide HTTP client for the engine: connect timeout 2 s (a dead socket fails fast), no read timeout
    /// (each call has its own deadline; `wait` has none). Never shut down, like `HTTPClient.shared`.
    public static let sharedHTTPClient = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(2)), decompression: .disabled))

    /// The deadline of every call except ``wait(_:)`` and ``logs(_:into:)``: 30 seconds.
    static let callTimeout = TimeAmount.seconds(30)

    // MARK: Engine

    /// `GET /_ping`: whether the engine answers.
    ///
    /// - Throws: ``RuntimeError/Code/unreachable`` when it does not.
    public func ping() async throws {
        _ = try await call(.GET, "/_ping", expect: [200])
    }

    // MARK: Images

    /// `GET /images/{name}/json`: whether the image is on the host.
    ///
    /// - Parameter image: A reference such as `busybox:1` or an image ID.
    /// - Returns: `false` on 404.
    public func imageExists(_ image: String) async throws -> Bool {
        let (status, _) = try await call(.GET, "/images/\(escape(image))/json", expect: [200, 404])
        return status == 200
    }

    /// `POST /images/create?fromImage=…&tag=…`: pulls an image from its registry.
    ///
    /// The engine answers 200 and then streams progress; a failure may come as an `error` object inside that stream,
    /// which is reported here as a thrown error.
    ///
    /// - Parameter image: A reference; without a tag, `latest`.
    /// - Throws: ``RuntimeError/Code/imageMissing`` with the engine's message when the pull fails.
    public func pull(_ image: String) async throws {
        let (name, tag) = Self.splitReference(image)
        let query = "fromImage=\(escape(name))&tag=\(escape(tag))"
        let status: Int
        let body: Data
        do {
            (status, body) = try await call(
                .POST, "/images/create?\(query)", expect: [200], timeout: .minutes(30), maxBytes: 64 << 20)
        } catch {
            guard let engineError = error as? RuntimeError, engineError.code == .engine else { throw error }
            throw RuntimeError(.imageMissing, "cannot pull \(image): \(engineError.message)")
        }
        _ = status
        if let message = DockerAnswers.pullError(body) {
            throw RuntimeError(.imageMissing, "cannot pull \(image): \(message)")
        }
    }

    /// Splits `name[:tag]` (a registry port's colon is not a tag) into name and tag; the default tag is `latest`.
    static func splitReference(_ image: String) -> (name: String, tag: String) {
        if image.contains("@") { return (image, "") }
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") {
            return (String(image[..<colon]), String(image[image.index(after: colon)...]))
        }
        return (image, "latest")
    }

    // MARK: Containers

    /// `POST /containers/create?name=…`: creates a container.
    ///
    /// - Parameters:
    ///   - name: The container's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`); unique on the engine.
    ///   - body: The container's configuration.
    /// - Returns: The container's ID.
    /// - Throws: ``RuntimeError/Code/imageMissing`` (404), ``RuntimeError/Code/conflict`` (409: the name is taken).
    public func createContainer(name: String, body: ContainerCreateBody) async throws -> String {
        let (status, data) = try await call(
            .POST, "/containers/create?name=\(escape(name))", body: try JSONEncoder().encode(body),
            expect: [201, 404, 409])
        switch status {
        case 404:
            throw RuntimeError(.imageMissing, "image \(body.image) is not on this host: \(Self.message(data))")
        case 409:
            throw RuntimeError(.conflict, "container \(name) exists already: \(Self.message(data))")
        default:
            struct Created: Decodable {
                var id: String
                enum CodingKeys: String, CodingKey { case id = "Id" }
            }
            return try decode(Created.self, data).id
        }
    }

    /// `POST /containers/{id}/start`. A container already running (304) is not an error.
    public func startContainer(_ id: String) async throws {
        _ = try await call(.POST, "/containers/\(escape(id))/start", expect: [204, 304])
    }

    /// `GET /containers/{id}/json`: the container's state and labels.
    ///
    /// - Returns: `nil` when no such container exists (404).
    public func inspectContainer(_ id: String) async throws -> ContainerInspect? {
        let (status, data) = try await call(.GET, "/containers/\(escape(id))/json", expect: [200, 404])
        if status == 404 { return nil }
        return try decode(ContainerInspect.self, data)
    }

    /// `POST /containers/{id}/wait?condition=not-running`: waits, without a deadline, until the container is not
    /// running (returns at once if it already ended).
    ///
    /// - Returns: The exit code (`StatusCode`); a container killed by signal N reports 128+N.
    /// - Throws: ``RuntimeError/Code/notFound`` when the container does not exist; `CancellationError` when the
    ///   calling task is cancelled.
    public func wait(_ id: String) async throws -> Int32 {
        let (status, data) = try await call(
            .POST, "/containers/\(escape(id))/wait?condition=not-running", expect: [200, 404],
            timeout: .hours(24 * 365))
        if status == 404 { throw RuntimeError(.notFound, "no container \(id): \(Self.message(data))") }
        struct Waited: Decodable {
            var statusCode: Int64
            enum CodingKeys: String, CodingKey { case statusCode = "StatusCode" }
        }
        return Int32(truncatingIfNeeded: try decode(Waited.self, data).statusCode)
    }

    /// `GET /containers/json?all=true&filters={"label":[…]}`: containers carrying every given label.
    ///
    /// - Parameter labels: Filters: `key` (the label exists) or `key=value`; the engine ANDs them.
    /// - Returns: Running and stopped containers.
    public func listContainers(labels: [String]) async throws -> [ContainerSummary] {
        let filters = String(decoding: try JSONEncoder().encode(["label": labels]), as: UTF8.self)
        let (_, data) = try await call(.GET, "/containers/json?all=true&filters=\(escape(filters))", expect: [200])
        return try decode([ContainerSummary].self, data)
    }

    /// `GET /containers/{id}/logs?stdout=true&stderr=true`: the container's whole output so far, demultiplexed from
    /// the 8-byte-header stream frames (containers made without a TTY) into two files, which are replaced.
    ///
    /// - Parameters:
    ///   - id: The container.
    ///   - stdout: The file for stream 1 (and stdin echo, stream 0).
    ///   - stderr: The file for stream 2.
    public func logs(_ id: String, stdout: String, stderr: String) async throws {
        let url = try url("/containers/\(escape(id))/logs?stdout=true&stderr=true")
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.replaceOrAdd(name: "Host", value: "docker")
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .minutes(10))
        } catch {
            throw unreachable(error)
        }
        guard response.status.code == 200 else {
            let data = (try? await response.body.collect(upTo: 1 << 20)).map { Data($0.readableBytesView) } ?? Data()
            throw RuntimeError(.engine, "logs of \(id): HTTP \(response.status.code): \(Self.message(data))")
        }
        _ = FileManager.default.createFile(atPath: stdout, contents: nil)
        _ = FileManager.default.createFile(atPath: stderr, contents: nil)
        guard let out = FileHandle(forWritingAtPath: stdout), let err = FileHandle(forWritingAtPath: stderr) else {
            throw RuntimeError(.engine, "cannot write the log files \(stdout) and \(stderr)")
        }
        defer {
            try? out.close()
            try? err.close()
        }
        var demultiplexer = DockerLogDemultiplexer()
        do {
            for try await buffer in response.body {
                for frame in demultiplexer.feed(Array(buffer.readableBytesView)) {
                    try (frame.stream == .stderr ? err : out).write(contentsOf: frame.bytes)
                }
            }
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw unreachable(error)
        }
    }

    /// `POST /containers/{id}/stop?t=…`: the container's stop signal (SIGTERM unless its image says otherwise), then
    /// SIGKILL after `graceSeconds`. Returns when the container has stopped. Not running (304) or gone (404) is not
    /// an error.
    ///
    /// - Parameters:
    ///   - id: The container.
    ///   - graceSeconds: Seconds between the stop signal and SIGKILL.
    public func stopContainer(_ id: String, graceSeconds: Int) async throws {
        _ = try await call(
            .POST, "/containers/\(escape(id))/stop?t=\(graceSeconds)", expect: [204, 304, 404],
            timeout: .seconds(Int64(graceSeconds) + 30))
    }

    /// `POST /containers/{id}/kill?signal=…`. Not running (409) or gone (404) is not an error.
    public func killContainer(_ id: String, signal: String = "KILL") async throws {
        _ = try await call(.POST, "/containers/\(escape(id))/kill?signal=\(signal)", expect: [204, 404, 409])
    }

    /// `DELETE /containers/{id}?force=true&v=true`: removes a container (killing it if it runs) and its anonymous
    /// volumes. Already gone (404) is not an error.
    public func removeContainer(_ id: String) async throws {
        _ = try await call(.DELETE, "/containers/\(escape(id))?force=true&v=true", expect: [204, 404, 409])
    }

    // MARK: Plumbing

    private func url(_ path: String) throws -> String {
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: "/\(Self.apiVersion)\(path)") else {
            throw RuntimeError(.unreachable, "the Docker socket path \(socketPath) cannot be used in a URL")
        }
        return url.absoluteString
    }

    private func unreachable(_ error: any Error) -> any Error {
        if error is CancellationError { return error }
        return RuntimeError(.unreachable, "cannot reach Docker at \(socketPath)", underlying: error)
    }

    /// One request; the whole body is read (up to `maxBytes`).
    ///
    /// - Returns: The status and body, when the status is one of `expect`.
    /// - Throws: ``RuntimeError/Code/unreachable`` when the engine does not answer; ``RuntimeError/Code/engine``
    ///   for another status.
    private func call(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, expect: Set<Int>, timeout: TimeAmount = callTimeout,
        maxBytes: Int = 16 << 20
    ) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: try url(path))
        request.method = method
        request.headers.replaceOrAdd(name: "Host", value: "docker")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let status: Int
        let data: Data
        do {
            let response = try await httpClient.execute(request, timeout: timeout)
            status = Int(response.status.code)
            data = Data(try await response.body.collect(upTo: maxBytes).readableBytesView)
        } catch {
            throw unreachable(error)
        }
        guard expect.contains(status) else {
            throw RuntimeError(.engine, "\(method.rawValue) \(path): HTTP \(status): \(Self.message(data))")
        }
        return (status, data)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        try DockerAnswers.decode(type, data)
    }

    /// The `message` of an engine error body, else the body as text: ``DockerAnswers/message(_:)``.
    static func message(_ data: Data) -> String { DockerAnswers.message(data) }

    private func escape(_ component: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return component.addingPercentEncoding(withAllowedCharacters: allowed) ?? component
    }
}

/// The body of `POST /containers/create` (Docker Engine API v1.41, `ContainerConfig` plus `HostConfig`).
public struct ContainerCreateBody: Codable, Sendable, Equatable {
    /// `Image`: the image reference.
    public var image: String
    /// `Cmd`: argv.
    public var command: [String]
    /// `Env`: `KEY=VALUE` entries.
    public var environment: [String]
    /// `WorkingDir` inside the container.
    public var workingDirectory: String
    /// `Labels`.
    public var labels: [String: String]
    /// `HostConfig`.
    public var hostConfig: HostConfig

    enum CodingKeys: String, CodingKey {
        case image = "Image", command = "Cmd", environment = "Env", workingDirectory = "WorkingDir"
        case labels = "Labels", hostConfig = "HostConfig"
    }

    /// `HostConfig`: mounts, network, limits, devices.
    public struct HostConfig: Codable, Sendable, Equatable {
        /// `Binds`: `host-path:container-path[:options]`.
        public var binds: [String]
        /// `NetworkMode`: always `none` for tasks.
        public var networkMode: String
        /// `Init`: run docker-init (tini) as PID 1, so that signals reach the command and zombies are reaped.
        public var initProcess: Bool
        /// `Memory`: the memory limit in bytes; 0 for none.
        public var memory: Int64
        /// `NanoCpus`: the CPU limit in units of 10⁻⁹ CPUs; 0 for none.
        public var nanoCPUs: Int64
        /// `DeviceRequests`: the GPUs (driver `nvidia`, capability `gpu`, the booked indices as `DeviceIDs`).
        public var deviceRequests: [DeviceRequest]

        enum CodingKeys: String, CodingKey {
            case binds = "Binds", networkMode = "NetworkMode", initProcess = "Init", memory = "Memory"
            case nanoCPUs = "NanoCpus", deviceRequests = "DeviceRequests"
        }
    }

    /// `DeviceRequest`: a request for devices from a driver (the NVIDIA container toolkit for GPUs).
    public struct DeviceRequest: Codable, Sendable, Equatable {
        /// `Driver`, e.g. `nvidia`.
        public var driver: String
        /// `DeviceIDs`: the GPUs' indices on the host, as strings.
        public var deviceIDs: [String]
        /// `Capabilities`: OR of ANDs, e.g. `[["gpu"]]`.
        public var capabilities: [[String]]

        enum CodingKeys: String, CodingKey {
            case driver = "Driver", deviceIDs = "DeviceIDs", capabilities = "Capabilities"
        }
    }
}

/// The part of `GET /containers/{id}/json` the runtime reads.
public struct ContainerInspect: Decodable, Sendable {
    /// `Id`.
    public var id: String
    /// `State`.
    public var state: State
    /// `Config.Labels`.
    public var labels: [String: String]

    /// `State`: whether it runs, its PID on the host, its exit code and times (RFC 3339).
    public struct State: Decodable, Sendable {
        public var status: String
        public var running: Bool
        public var pid: Int32
        public var exitCode: Int32
        public var startedAt: String?
        public var finishedAt: String?
        public var oomKilled: Bool?
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case status = "Status", running = "Running", pid = "Pid", exitCode = "ExitCode"
            case startedAt = "StartedAt", finishedAt = "FinishedAt", oomKilled = "OOMKilled", error = "Error"
        }
    }

    enum CodingKeys: String, CodingKey { case id = "Id", state = "State", config = "Config" }
    enum ConfigKeys: String, CodingKey { case labels = "Labels" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        state = try container.decode(State.self, forKey: .state)
        let config = try container.nestedContainer(keyedBy: ConfigKeys.self, forKey: .config)
        labels = try config.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
    }
}

/// One entry of `GET /containers/json`.
public struct ContainerSummary: Decodable, Sendable {
    /// `Id`.
    public var id: String
    /// `Names`, each with a leading `/`.
    public var names: [String]
    /// `Labels`.
    public var labels: [String: String]
    /// `State`: `created`, `running`, `exited`, …
    public var state: String

    enum CodingKeys: String, CodingKey { case id = "Id", names = "Names", labels = "Labels", state = "State" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        names = try container.decodeIfPresent([String].self, forKey: .names) ?? []
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        state = try container.decodeIfPresent(String.self, forKey: .state) ?? ""
    }
}
