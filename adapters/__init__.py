"""Agency-side adapters.

read -> map -> validate -> minimise -> pseudonymise -> encode -> publish.

Each layer imports only the ones below it: `profile`, `mapping`, `versions` and
`outbox` at the bottom; then `sources` (one module per kind of source, behind
the protocols of `sources.base`), `publishers` and `metrics`; `pipeline` (the
adapter and the outbox forwarder); `drain`; and `runner` on top. `console`
prints what a run reports; `synth` writes synthetic exports.
"""
