"""The ``chaos`` suite: faults under load, and an audit that nothing acknowledged was lost
(``suite.run_chaos``; the parts are described in ``suite``)."""
