from arsup.cli import main

raise SystemExit(main())
