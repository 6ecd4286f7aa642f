import Logging

extension SettingKey {
    /// The keys the backend and the agent share: the transport and its SQS settings (same names, same environment
    /// variables, so one shell's `TOUCHSTONE_TRANSPORT` serves both). The credentials are `sqs.credentials.*`, so
    /// that their variables (`TOUCHSTONE_SQS_CREDENTIALS_…`) never collide with the test servers' exported
    /// `TOUCHSTONE_SQS_ACCESS_KEY_ID`.
    ///
    /// - Parameters:
    ///   - embeddedMeaning: What `embedded` means for this program.
    ///   - queuePrefix: The program's default queue name prefix.
    public static func transportKeys(embeddedMeaning: String, queuePrefix: String) -> [SettingKey] {
        [
            SettingKey(
                "transport", option: "transport", kind: .choice(["embedded", "sqs"]), default: "embedded",
                summary: "The queue transport: embedded (\(embeddedMeaning)) or sqs."),
            SettingKey(
                "sqs.region", option: "sqs-region",
                summary: "The SQS region (sqs transport); else $AWS_REGION or $AWS_DEFAULT_REGION."),
            SettingKey(
                "sqs.endpoint", option: "sqs-endpoint",
                summary: "An SQS endpoint URL overriding the region's (sqs transport)."),
            SettingKey(
                "sqs.credentials.accessKeyId", secret: true,
                summary: "The AWS access key ID (sqs transport); else $AWS_ACCESS_KEY_ID or the shared credentials file."),
            SettingKey(
                "sqs.credentials.secretAccessKey", secret: true, summary: "The AWS secret access key that goes with sqs.credentials.accessKeyId."),
            SettingKey(
                "queuePrefix", option: "queue-prefix", default: queuePrefix,
                summary: "The queue name prefix: queues are <prefix>-<server>-<n>-req.fifo and -resp.fifo."),
        ]
    }

    /// `log.format` and `log.level`.
    ///
    /// - Parameter program: "backend" or "agent", for the summary.
    public static func logKeys(program: String) -> [SettingKey] {
        [
            SettingKey(
                "log.format", option: "log-format", kind: .choice(LogFormat.allCases.map(\.rawValue)),
                default: LogFormat.text.rawValue,
                summary: "How the \(program) logs to standard error: text, or json (one object a line, for log shippers)."),
            SettingKey(
                "log.level", option: "log-level", kind: .choice(Logger.Level.allCases.map(\.rawValue)),
                default: Logger.Level.info.rawValue, summary: "The least severe log level written."),
        ]
    }
}

extension ResolvedSettings {
    /// Bootstraps swift-log with the resolved `log.format` and `log.level` (``SettingKey/logKeys(program:)``).
    public func bootstrapLogging() {
        LogBootstrap.bootstrap(
            format: text("log.format").flatMap(LogFormat.init(rawValue:)) ?? .text,
            level: text("log.level").flatMap(Logger.Level.init(rawValue:)) ?? .info)
    }

    /// The environment with configured SQS credentials (`sqs.credentials.accessKeyId`, `sqs.credentials.secretAccessKey`) in place of
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, for `QueueTransport.fromSettings`.
    public func environmentWithCredentials(_ environment: [String: String]) -> [String: String] {
        var environment = environment
        if let id = text("sqs.credentials.accessKeyId"), let secret = text("sqs.credentials.secretAccessKey") {
            environment["AWS_ACCESS_KEY_ID"] = id
            environment["AWS_SECRET_ACCESS_KEY"] = secret
            environment["AWS_SESSION_TOKEN"] = nil
        }
        return environment
    }
}
