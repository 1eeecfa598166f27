"""`python -m car22.validation --write-suites`: regenerate the suites under expectations/."""
from car22.validation.suites import main

raise SystemExit(main())
