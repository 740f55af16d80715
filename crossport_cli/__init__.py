"""`crossport`: the portal's command line, for CI jobs and terminals. Built on the HTTP API only
(standard library, no Django), so it runs anywhere Python does; see `crossport --help`."""
