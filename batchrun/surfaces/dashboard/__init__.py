"""The web dashboard (`batchrun dashboard`): pages and a JSON API over one namespace, with guarded actions."""
