"""Mailed digests (`logpipe digest`): who gets what, and the mails' text."""
