#!/bin/sh
# Refuse to start the team stack with a missing, short or placeholder secret (run by the `secrets-check`
# service of docker-compose.yml before anything else starts; also usable by hand: sh deploy/check-secrets.sh).
# Placeholders are the values shipped in .env.example and anything containing "change-me".
status=0
refuse() { echo "refusing to start: $1 $2; set it in .env (see .env.example)" >&2; status=1; }
for name in POSTGRES_PASSWORD LABEL_STUDIO_PASSWORD PREFECT_AUTH_STRING LABEL_STUDIO_TOKEN; do
  eval "value=\${$name:-}"
  case "$value" in
    "") refuse "$name" "is empty" ;;
    *change-me*|*changeme*|password|admin|admin:admin) refuse "$name" "is still a placeholder" ;;
    *) [ ${#value} -ge 12 ] || refuse "$name" "is shorter than 12 characters" ;;
  esac
done
case "${LABEL_STUDIO_TOKEN:-}" in
  *[!0-9a-f]*|"") refuse LABEL_STUDIO_TOKEN "must be 40 hexadecimal characters" ;;
  *) [ ${#LABEL_STUDIO_TOKEN} -eq 40 ] || refuse LABEL_STUDIO_TOKEN "must be 40 hexadecimal characters" ;;
esac
case "${PREFECT_AUTH_STRING:-}" in
  ?*:?*) ;;
  *) refuse PREFECT_AUTH_STRING "must be user:password" ;;
esac
[ "$status" = 0 ] && echo "secrets look set"
exit "$status"
