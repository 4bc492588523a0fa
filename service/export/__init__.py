"""Exports: a chat (as it is or was) rendered as JSON, Markdown, HTML, PDF or ZIP."""
