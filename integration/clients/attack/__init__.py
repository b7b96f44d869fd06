"""The attacker library of tests/attack_*.rs: an attacker who has only the
local password (a stolen phone, malware using a client's saved login)
tries every class of issue 12 against giftlock, each variant also run
directly against Dovecot as the control. `wire` speaks raw IMAP, `leaks`
is the success criterion, `framework` runs variants; one module per
class. Run through integration/clients/attack_run.py."""
