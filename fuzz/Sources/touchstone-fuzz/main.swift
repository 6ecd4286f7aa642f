import CFuzzerDriver
import Foundation

// `touchstone-fuzz` with TOUCHSTONE_FUZZ_TARGET=NAME runs libFuzzer on one target; its other arguments are libFuzzer's
// (corpus directories, -max_total_time=N, …). Run it through `tools/fuzz NAME --seconds N`.

let name = ProcessInfo.processInfo.environment["TOUCHSTONE_FUZZ_TARGET"] ?? ""
guard let target = FuzzTargets.all[name] else {
    let known = FuzzTargets.all.keys.sorted().joined(separator: ", ")
    FileHandle.standardError.write(Data("touchstone-fuzz: set TOUCHSTONE_FUZZ_TARGET to one of: \(known)\n".utf8))
    exit(2)
}
FuzzTargets.selected = target

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(
    LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzTargets.selected(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    })
