import sys

if sys.argv[1:2] == ["soak"]:  # python -m benchmarks soak --minutes N --seed S
    from .soak import main as soak

    raise SystemExit(soak(sys.argv[2:]))

from .run import main

raise SystemExit(main())
