"""An organisation's own data: sources, schema checks, encoding, statistics and commitments.

Everything here runs inside one organisation's process and reads only its own
source; nothing in this package sends data anywhere. What leaves the organisation
is decided by the roles above: integer feature sums in a statistics round, and a
salted commitment to the encoded rows.
"""
