"""The consumer group protocol of KIP-848 as a pure state machine: `assignors` (uniform,
range), `reconcile` (one member's way to its target, revocation first), `group` (the
data), `regex` (RE2 subscriptions), `machine` (heartbeats, leaves, timers, offsets
checks), `views` (describe), `stored` (the group as the metadata store keeps it)."""
