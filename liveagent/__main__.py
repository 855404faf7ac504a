from liveagent.cli import main

raise SystemExit(main())
