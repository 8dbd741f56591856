"""Developer tooling (a throwaway RabbitMQ node, the `serve` supervisor); nothing at runtime
imports it."""
