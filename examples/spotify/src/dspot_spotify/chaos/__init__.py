"""A Jepsen-style chaos test of the music service: real node and gateway processes, each
in its own Linux network namespace, under a seeded nemesis (partitions, flaky links,
kill -9, SIGSTOP), driven by REST and Subsonic clients whose history is checked by
:mod:`dspot.history` and by the service's own checks (convergence, R copies, byte-identical
downloads, no unasked deaths).

    python -m dspot_spotify.chaos --nodes 5 --gateways 2 --duration 300 --seed 7 \\
        --nemesis partition,flaky,kill,pause --out chaos-out

Needs root (network namespaces), ``ip``, ``tc`` and ``nft``. See ``docs/service/chaos.md``.
"""
