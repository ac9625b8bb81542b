"""Where a candidate's metrics come from: metric sources (table, facts, benchmark), the accuracy
estimators (``accuracy``: table, train, supernet) and the datasets and training they use."""
