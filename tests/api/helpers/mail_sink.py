"""The tests' mail server: aiosmtpd, storing every mail it accepts in a
Maildir (with the envelope in X-MailFrom and X-RcptTo), started by
mail_sink.rs as `python3 -c <this file> HOST PORT MAILDIR`.

aiosmtpd reads the address in MAIL FROM and RCPT TO as a header parser
would, decoding an RFC 2047 encoded word (`=?utf-8?q?=61lice?=@example.com`
becomes `alice@example.com`): the tests must see the envelope as the client
sent it, so it is recorded here unparsed.
"""

import asyncio
import sys

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP


class AsSent(SMTP):
    def _getaddr(self, arg):
        address, rest = super()._getaddr(arg)
        sent = (arg or "").lstrip()
        if address and sent.startswith("<"):
            address = sent[1:].split(">", 1)[0]
        return address, rest


def main():
    host, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    handler = Mailbox(maildir)
    loop = asyncio.new_event_loop()
    # A fixed hostname: the default looks up this host's name, which can
    # be slow.
    serve = lambda: AsSent(handler, hostname="mail-sink", loop=loop)
    loop.run_until_complete(loop.create_server(serve, host, port))
    loop.run_forever()


main()
