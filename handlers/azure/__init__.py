"""Azure entries: Azure Functions (Python v2 programming model), buffered or through the HTTP streaming extension."""
