"""RFC 6455 compliance: the Autobahn TestSuite cases, run by kosoku (make autobahn)."""
