"""`python -m azure_imds_credential`: the same as the `azure-imds-token` command."""

from ._cli import main

raise SystemExit(main())
