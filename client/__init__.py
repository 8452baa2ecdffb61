"""The one way to talk to Temporal from outside a worker: connect, incident ids
and their inverse, search attributes, alerts into incidents (signal-with-start),
listing and reading incidents, people's updates and what their refusals mean.

Import the modules themselves (`stanch.client.incidents`, ...): this file stays
empty so that a workflow importing `stanch.client.search_attributes` pulls in
nothing else of the room."""
