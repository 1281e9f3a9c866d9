"""casebridge: hands a business's customer cases to 8x8 Contact Center agents and brings the replies back."""

__version__ = "0.1.0"
