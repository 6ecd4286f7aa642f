import ArgumentParser
import FileSignals
import Foundation
import Operations
import Orchestrator
import Transport

/// The backend's configuration keys (`touchstone serve`, `server attach`, `config show`), declared once: each default
/// is read from ``BackendConfiguration``'s or ``TransferSettings``'s own, so `serve`'s options declare none of
/// their own (docs/configuration.md is generated from this list by `touchstone config keys`).
enum BackendSettings {
    static let defaults = BackendConfiguration()

    static let keys: [SettingKey] = [
        SettingKey(
            "stateDir", option: "state-dir", default: GlobalOptions.defaultStateDirectory,
            summary: "The directory holding the event log (touchstone.db), the embedded queues and the task files."),
    ] + SettingKey.transportKeys(
        embeddedMeaning: "queues.db in the state dir, one host", queuePrefix: defaults.queuePrefix) + [
        SettingKey(
            "statusInterval", option: "status-interval", kind: .number(above: 0, atMost: 3600), unit: "seconds",
            default: SettingValue.number(defaults.statusInterval.secondsValue).description,
            summary: "How long an idle server's blocking heartbeat query is held before the agent answers (task "
                + "starts and ends are answered at once): the longest an idle server goes without contact."),
        SettingKey(
            "requestTimeout", option: "request-timeout", kind: .integer(1...3600), unit: "seconds",
            default: String(Int(defaults.requestTimeout.secondsValue)),
            summary: "Delivery deadline: how long a request stays valid for the agent (it never executes an expired "
                + "one); also each transfer request's wait."),
        SettingKey(
            "executionTimeout", option: "execution-timeout", kind: .integer(1...3600), unit: "seconds",
            default: String(defaults.executionSeconds),
            summary: "Execution deadline: how long a delivered start, listing or sync may take before its response "
                + "is due; a stop adds its grace period. An unanswered request drains the channel."),
        SettingKey(
            "heartbeatTimeout", option: "heartbeat-timeout", kind: .number(above: 0, atMost: 3600), unit: "seconds",
            default: SettingValue.number(defaults.heartbeatTimeout.secondsValue).description,
            summary: "Grace for an answer past a request's deadline, and the wait after each resend of it with the "
                + "same request ID (a late answer is not a desync)."),
        SettingKey(
            "missedHeartbeats", option: "missed-heartbeats", kind: .integer(1...100),
            default: String(defaults.missedHeartbeatsForUnreachable),
            summary: "Unanswered sends of one request (the first and its resends) after which the channel is drained "
                + "and the server is unreachable."),
        SettingKey(
            "lostAfter", option: "lost-after", kind: .integer(0...86_400 * 30), unit: "seconds",
            default: String(Int(defaults.lostAfter.secondsValue)),
            summary: "How long a server may stay unreachable before its tasks are lost and requeued."),
        SettingKey(
            "maxAttempts", option: "max-attempts", kind: .integer(1...100), default: String(defaults.maxAttempts),
            summary: "Attempts a task gets before an infrastructure failure is final."),
        SettingKey(
            "stopGrace", option: "stop-grace", kind: .integer(0...3600), unit: "seconds",
            default: String(defaults.stopGraceSeconds),
            summary: "Seconds between SIGTERM and SIGKILL when a drain deadline stops a task."),
        SettingKey(
            "packing", option: "packing", kind: .choice(PackingPolicy.allCases.map(\.rawValue)),
            default: defaults.packing.rawValue,
            summary: "How to choose among servers that fit: pack (fill busy servers first) or spread."),
        SettingKey(
            "maxTransferBytes", option: "max-transfer-bytes", kind: .integer(0...Int.max), unit: "bytes",
            default: String(defaults.transfers.maxFileBytes),
            summary: "The largest file put to or got from an agent (checked before sending)."),
        SettingKey(
            "maxClockSkew", option: "max-clock-skew", kind: .number(above: 0, atMost: 86_400), unit: "seconds",
            default: SettingValue.number(defaults.maxClockSkew.secondsValue).description,
            summary: "How far an agent's clock may be from the backend's; past it the server is unhealthy (clock "
                + "skew) and gets no new tasks, while its running tasks are left alone."),
        SettingKey(
            "gc.retentionDays", kind: .integer(0...36_500), unit: "days", default: String(RetentionPolicy().days),
            summary: "Inputs, artifacts and log mirrors of tasks that ended more than this many days ago are removed "
                + "by serve's daily run and by `touchstone gc` (docs/operations.md)."),
        SettingKey(
            "gc.intervalHours", kind: .integer(0...8760), unit: "hours", default: "24",
            summary: "Hours between serve's runs of the retention policy, the first one an interval after the start; "
                + "0 turns them off."),
        SettingKey(
            "metrics.listen", option: "metrics-listen", kind: .loopbackAddress,
            summary: "Serve Prometheus text at http://HOST:PORT/metrics (loopback only); none by default."),
    ] + SettingKey.logKeys(program: "backend")
}

extension Duration {
    /// The duration in seconds, to the millisecond.
    var secondsValue: Double { Double(wholeMilliseconds) / 1000 }
}

extension BackendSettings {
    /// The `--help` text of a key's option.
    static func help(_ name: String) -> ArgumentHelp { ArgumentHelp(keys.named(name).help) }

    /// The backend's configuration from resolved settings (every key is checked and has its default by then).
    static func configuration(_ settings: ResolvedSettings, stateDirectory: String) -> BackendConfiguration {
        var configuration = BackendConfiguration(
            queuePrefix: settings.text("queuePrefix") ?? defaults.queuePrefix,
            statusInterval: settings.duration("statusInterval") ?? defaults.statusInterval,
            requestTimeout: settings.duration("requestTimeout") ?? defaults.requestTimeout,
            heartbeatTimeout: settings.duration("heartbeatTimeout") ?? defaults.heartbeatTimeout,
            missedHeartbeatsForUnreachable: settings.integer("missedHeartbeats") ?? defaults.missedHeartbeatsForUnreachable,
            lostAfter: settings.duration("lostAfter") ?? defaults.lostAfter,
            maxAttempts: settings.integer("maxAttempts") ?? defaults.maxAttempts,
            stopGraceSeconds: settings.integer("stopGrace") ?? defaults.stopGraceSeconds,
            packing: PackingPolicy(rawValue: settings.text("packing") ?? "") ?? defaults.packing)
        configuration.executionSeconds = settings.integer("executionTimeout") ?? defaults.executionSeconds
        configuration.maxClockSkew = settings.duration("maxClockSkew") ?? defaults.maxClockSkew
        configuration.transfers = TransferSettings(
            stateDirectory: stateDirectory,
            maxFileBytes: settings.integer("maxTransferBytes").map(Int64.init) ?? defaults.transfers.maxFileBytes,
            requestTimeout: configuration.requestTimeout)
        return configuration
    }
}
