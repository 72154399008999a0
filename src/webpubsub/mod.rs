//! Web PubSub core: connection strings, client access tokens, upstream signatures and the REST client.
