"""Agency-side adapters.

read -> map -> validate -> minimise -> pseudonymise -> encode -> publish.
"""
