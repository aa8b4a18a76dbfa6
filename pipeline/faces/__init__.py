"""Face detection backends behind one small interface (filled in by the clip-generation issue)."""
