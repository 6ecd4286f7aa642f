/// One GPU as the agent reads it from `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu
/// --format=csv,noheader,nounits` and `--query-compute-apps=gpu_uuid,pid,used_memory`.
public struct GPUDevice: Codable, Sendable, Equatable, Hashable {
    /// The index nvidia-smi gives, as used in `CUDA_VISIBLE_DEVICES`.
    public var index: Int
    /// `GPU-…`, or `MIG-…` for a MIG device.
    public var uuid: String
    public var name: String
    /// Total memory in MiB (`nounits`), `nil` when nvidia-smi prints `[N/A]`.
    public var memoryTotalMiB: Int?
    /// Used memory in MiB, `nil` when not reported.
    public var memoryUsedMiB: Int?
    /// Utilisation in percent, `nil` when not reported (MIG devices).
    public var utilizationPercent: Int?
    /// Compute processes on this GPU that are not Touchstone tasks (an engineer's work): the GPU is busy.
    public var foreignProcesses: Int

    public init(
        index: Int, uuid: String, name: String, memoryTotalMiB: Int?, memoryUsedMiB: Int?, utilizationPercent: Int?,
        foreignProcesses: Int = 0
    ) {
        self.index = index
        self.uuid = uuid
        self.name = name
        self.memoryTotalMiB = memoryTotalMiB
        self.memoryUsedMiB = memoryUsedMiB
        self.utilizationPercent = utilizationPercent
        self.foreignProcesses = foreignProcesses
    }
}
