#!/bin/sh
# Debian's rabbitmq-server as the container's process, configured from the environment:
#   RABBITMQ_DEFAULT_USER / _PASS / _VHOST   the first user and vhost (default guest/guest, /)
#   RABBITMQ_NODE_PORT (5672), RABBITMQ_MANAGEMENT_PORT (15672, "none": plugin off)
#   RABBITMQ_NODENAME, RABBITMQ_DIST_PORT, ERL_EPMD_PORT: read by RabbitMQ itself; with host
#   networking set all three, or the node meets the machine's own broker in its epmd on 4369.
# Listeners bind RABBITMQ_LISTEN_ADDRESS (127.0.0.1: this image is meant for host networking).
set -eu
listen="${RABBITMQ_LISTEN_ADDRESS:-127.0.0.1}"
management="${RABBITMQ_MANAGEMENT_PORT:-15672}"
{
  echo "listeners.tcp.default = $listen:${RABBITMQ_NODE_PORT:-5672}"
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
  echo "log.console = true"
  echo "log.file = false"
  if [ "$management" != none ]; then
    echo "management.tcp.ip = $listen"
    echo "management.tcp.port = $management"
  fi
} > /etc/rabbitmq/rabbitmq.conf
if [ "$management" = none ]; then
  echo '[].' > /etc/rabbitmq/enabled_plugins
fi
: > /etc/rabbitmq/rabbitmq-env.conf
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
export HOME=/var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
