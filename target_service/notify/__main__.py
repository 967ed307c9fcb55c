"""`python -m target_service.notify`: one notification dispatcher."""

from target_service.notify.dispatcher import main

main()
