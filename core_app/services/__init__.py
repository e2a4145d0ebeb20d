"""Use cases shared by every transport (REST, GraphQL, gRPC, agents)."""
