import ArgumentParser
import Operations

/// `touchstone config show`: what `serve` would run with, and where each value comes from.
struct ConfigShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print the resolved configuration and each value's source; secrets print as <secret>.",
        discussion: """
            Takes the same options as `touchstone serve`: a value given here shows as coming from the command line. \
            Precedence: command line, environment (TOUCHSTONE_…), the configuration file (--config or \
            $TOUCHSTONE_CONFIG), defaults. A bad value stops with one line naming the key, the value and what is \
            allowed, as `serve` would.
            """)

    @OptionGroup(title: "Backend options") var settings: BackendOptions

    @OptionGroup(title: "Transport options") var transportOptions: TransportOptions

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let commandLine = settings.commandLineSettings.merging(transportOptions.commandLineSettings(global: global)) {
            $1
        }
        let resolved = try await transportOptions.resolveSettings(commandLine: commandLine)
        switch global.format {
        case .table: print(SettingsRendering.table(resolved), terminator: "")
        case .json: print(SettingsRendering.json(resolved), terminator: "")
        }
    }
}
