"""Running the service as real processes on one machine: one node
(:mod:`~dspot_spotify.process.node`), the gateway (:mod:`~dspot_spotify.process.gateway`),
and a supervisor of several (:mod:`~dspot_spotify.process.supervisor`: ``dspot-spotify up``
and the tests' real-process clusters), over what they share
(:mod:`~dspot_spotify.process.setup`)."""
