"""Build pages: projects and their builds, the ledger, a team's merges and registry logins."""
