import ArgumentParser
import Operations

/// `touchstone config keys`: the backend's keys as the Markdown table of docs/configuration.md.
struct ConfigKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Print every backend configuration key (type, unit, default, range) as a Markdown table.")

    func run() throws {
        print(SettingsRendering.markdownTable(BackendSettings.keys), terminator: "")
    }
}
