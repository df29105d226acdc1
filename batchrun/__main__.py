from batchrun.surfaces.cli import main

raise SystemExit(main())
