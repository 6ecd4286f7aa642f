import ArgumentParser

/// `touchstone config …`: the backend's configuration (docs/configuration.md).
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "See the backend's resolved configuration and its keys.",
        subcommands: [ConfigShow.self, ConfigKeys.self])
}
