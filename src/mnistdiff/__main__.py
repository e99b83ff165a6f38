from mnistdiff.cli import main

raise SystemExit(main())
