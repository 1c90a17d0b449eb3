"""The token that marks a test message: in its Subject, Message-ID and body, so a test
finds exactly the message it sent."""

import secrets
import string


def token():
    """"tok" and 16 random decimal digits. Not hex: a hex token such as tokc2aa1e7d...
    matches SpamAssassin's TVD_SUBJ_NUM_OBFU_MINFP (letters, digits, letters in the
    Subject), which added 1.0 to one message in 25 (13 of 300 measured) and pushed the
    Junk check's message over the reject score. 400 decimal tokens: no rule."""
    return "tok" + "".join(secrets.choice(string.digits) for _ in range(16))
