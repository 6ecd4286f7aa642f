import Foundation

/// A **fake** `nvidia-smi`: a shell script printing real nvidia-smi output for the two queries the agent makes.
/// It stands in for the real tool because this machine has no GPU; its output is copied in shape from
/// nvidia-smi 535 on A100 hosts (`--format=csv,noheader,nounits`).
public enum FakeNvidiaSMI {
    /// What the fake prints.
    public enum Scenario: Sendable {
        /// Four A100s; GPU 1 runs a compute process that is not Touchstone's (PID 4242).
        case fourGPUsOneBusy
        /// One A100 in MIG mode: memory and utilisation fields are `[N/A]`.
        case migDevice
        /// The driver is not loaded: nvidia-smi's real message and exit code 9.
        case missingDriver
        /// Output that is not the CSV asked for.
        case garbage
    }

    static let uuids = [
        "GPU-5a3c0e4e-9f1b-4d2a-8c3e-0b1d2e3f4a01", "GPU-5a3c0e4e-9f1b-4d2a-8c3e-0b1d2e3f4a02",
        "GPU-5a3c0e4e-9f1b-4d2a-8c3e-0b1d2e3f4a03", "GPU-5a3c0e4e-9f1b-4d2a-8c3e-0b1d2e3f4a04",
    ]

    /// Writes the fake into `directory` as `nvidia-smi` and returns its path.
    public static func install(_ scenario: Scenario, in directory: String) throws -> String {
        let path = directory + "/nvidia-smi"
        let gpus: String
        let apps: String
        var failure = ""
        switch scenario {
        case .fourGPUsOneBusy:
            gpus = """
                0, \(uuids[0]), NVIDIA A100-SXM4-40GB, 40960, 0, 0
                1, \(uuids[1]), NVIDIA A100-SXM4-40GB, 40960, 17321, 87
                2, \(uuids[2]), NVIDIA A100-SXM4-40GB, 40960, 4, 0
                3, \(uuids[3]), NVIDIA A100-SXM4-40GB, 40960, 4, 0
                """
            apps = "\(uuids[1]), 4242, 17310"
        case .migDevice:
            gpus = "0, GPU-0e4a9b7c-3d2e-4f10-9a8b-7c6d5e4f3a21, NVIDIA A100-SXM4-40GB, [N/A], [N/A], [N/A]"
            apps = ""
        case .missingDriver:
            gpus = ""
            apps = ""
            failure = """
                echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
                exit 9
                """
        case .garbage:
            gpus = "<html>Segmentation fault (core dumped)</html>\nGPU 0: ???"
            apps = ""
        }
        let script = """
            #!/bin/sh
            \(failure)
            case "$1" in
              --query-gpu=*) cat <<'EOT'
            \(gpus)
            EOT
              ;;
              --query-compute-apps=*) cat <<'EOT'
            \(apps)
            EOT
              ;;
              *) echo "fake nvidia-smi: unsupported arguments $*" >&2; exit 2 ;;
            esac
            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }
}
