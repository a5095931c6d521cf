"""Test helpers: throwaway database and cache servers."""
