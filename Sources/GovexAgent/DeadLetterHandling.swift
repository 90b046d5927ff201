import GovexAPI
import GovexApply
import GovexWire
import Metrics

/// What a subscriber does with a delivery its database refuses (a constraint, a type, a
/// missing table or column): tries again with backoff, then keeps it as a dead letter,
/// raises an alarm, and holds this subscription's later deliveries until the DBA replays
/// or skips it (`govex deadletter`). Each subscription has its own puller, so the others
/// keep flowing meanwhile. Errors that say nothing about the delivery (the connection, a
/// deadlock) are not counted: the puller retries those for as long as they last.
extension DeliveryPuller {
    static let decisionPoll = Duration.milliseconds(500)

    func applyPatiently(_ file: [UInt8], _ verified: Delivery.Verified, _ prepared: Result<DeliveryApplier.Prepared, ApplyError>,
                        applier: DeliveryApplier) async throws -> DeliveryApplier.Outcome {
        let origin = verified.origin
        var attempts = 0
        while true {
            do {
                return try await applier.apply(try prepared.get())
            } catch let error as ApplyError where error.permanent {
                attempts += 1
                if attempts < retry.attempts {
                    let wait = retry.delay(afterFailures: attempts)
                    log(4, "subscription \(subscription.id): try \(attempts) of \(retry.attempts) failed: \(error.loggable); trying again in \(wait)")
                    try await pause(wait)
                    continue
                }
                let id = try await applier.deadLetter(file, sequence: verified.sequence, origin: origin, error: error.description, attempts: attempts)
                if let (letter, _) = try await applier.waitingDeadLetter(), letter.id == id { raiseAlarm(letter, cause: error.loggable) }
                try await awaitDecision(applier: applier)
                return .alreadyApplied
            }
        }
    }

    /// `cause` is what the log may say of the error (the dead letter keeps PostgreSQL's full text).
    func raiseAlarm(_ letter: DeadLetter, cause: String) {
        board?.subscription(subscription.resource, state: "dead letter \(letter.id)")
        Gauge(label: "govex_dead_letters_waiting", dimensions: [("subscription", String(subscription.id))]).record(1)
        // Unlabelled, as the capture side registers it: Prometheus refuses to mix the two.
        Counter(label: "govex_alarms_total").increment()
        Counter(label: "govex_dead_letters_total").increment()
        log(2, "ALARM: delivery \(letter.delivery) of subscription \(subscription.id) (\(subscription.resource) → \(target.qualifiedTable)) is dead letter "
            + "\(letter.id) after \(letter.attempts) tries: \(cause) (`govex deadletter show \(letter.id)` has the database's full message). Later deliveries of \(subscription.resource) wait; "
            + "fix the cause, then `govex deadletter replay \(letter.id)` (or `govex deadletter skip \(letter.id) --reason …`)")
    }

    /// Waits until the DBA decides on the subscription's dead letter, and carries it out:
    /// a replay applies the stored delivery (verified again: the table is the DBA's), a skip
    /// moves the cursor past it. A replay that fails again goes back to waiting.
    func awaitDecision(applier: DeliveryApplier) async throws {
        while true {
            guard let (letter, payload) = try await applier.waitingDeadLetter() else { break }
            switch letter.status {
            case .replay:
                do {
                    let verified = try await verify(payload)
                    guard verified.sequence == letter.delivery else {
                        throw DeliveryError("the stored file is delivery \(verified.sequence), not \(letter.delivery)")
                    }
                    _ = try await applier.apply(applicable(verified.records), sequence: verified.sequence, origin: letter.origin)
                    try await applier.settleDeadLetter(letter.id, as: .replayed)
                    log(5, "subscription \(subscription.id): dead letter \(letter.id) (delivery \(letter.delivery)) replayed by \(letter.resolvedBy ?? "?"); "
                        + "later deliveries follow")
                } catch let error as ApplyError where !error.permanent {
                    throw error
                } catch {
                    try await applier.settleDeadLetter(letter.id, as: .dead, error: "replay failed: \(error)")
                    log(2, "ALARM: replaying dead letter \(letter.id) failed: \(ApplyError.loggable(error)); it waits again")
                }
            case .skip:
                try await applier.skip(sequence: letter.delivery, origin: letter.origin)
                try await applier.settleDeadLetter(letter.id, as: .skipped)
                log(4, "subscription \(subscription.id): dead letter \(letter.id) (delivery \(letter.delivery)) skipped by \(letter.resolvedBy ?? "?")"
                    + (letter.reason.map { ": \($0)" } ?? "") + "; its changes are not in \(target.qualifiedTable)")
            case .dead, .replayed, .skipped:
                try await pause(Self.decisionPoll)
            }
        }
        Gauge(label: "govex_dead_letters_waiting", dimensions: [("subscription", String(subscription.id))]).record(0)
    }

    /// Sleeps for `duration`, or throws `CancellationError` as soon as the agent stops.
    func pause(_ duration: Duration) async throws {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if stopRequested { throw CancellationError() }
            try? await Task.sleep(for: min(.milliseconds(200), deadline - ContinuousClock.now))
        }
    }
}
