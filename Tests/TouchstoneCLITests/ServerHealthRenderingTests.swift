import Domain
import Foundation
@testable import Projections
import Testing

@testable import TouchstoneCLI

/// `server list` and `server show` name why a server is unhealthy (issue 17 part 3).
@Suite struct ServerHealthRenderingTests {
    @Test(arguments: [nil, "clock skew 6m"] as [String?], [ServerLifecycle.attached, .draining])
    func theStateShowsWhyAServerIsUnhealthy(unhealthy: String?, state: ServerLifecycle) {
        var row = ServerRow(
            serverID: ServerID(rawValue: "gpu-01")!, state: state, maxTasks: 2, channels: 3, booked: [], running: [],
            attachedAt: Date(timeIntervalSince1970: 0))
        row.unhealthy = unhealthy
        #expect(
            ServerShow.stateSummary(row)
                == (unhealthy == nil ? state.rawValue : "\(state.rawValue), unhealthy: clock skew 6m"))
    }
}
