"""The operator's HTTP admin API (issue 14): accounts, balances, plans, sessions,
records, audit trail, statements, bulk import, price enquiry. See README.md."""
