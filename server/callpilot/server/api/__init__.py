"""gRPC servicers: the contract's edge, translating errors into rich statuses."""
