"""`python -m mailctl.sync backup URL DIR`: the lean entry (see fastcli)."""

import sys

from mailctl.sync.fastcli import main

sys.exit(main())
