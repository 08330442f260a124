"""The trio runtime: actors with mailboxes, supervision, stream consumers and the node."""
