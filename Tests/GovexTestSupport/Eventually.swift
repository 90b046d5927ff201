/// Waits up to 60 s for `condition`, checking it every 200 ms: for what another process or
/// task does in its own time. True once it holds.
public func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<300 {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(200))
    }
    return false
}
