"""The small web app: sign-up with double opt-in, manage by link, one-click unsubscribe, JSON API."""
