"""Class mode: a teacher's room, the class answering on their own devices, the projector showing the
class beside the model.

    store.py       the one storage layer (SQLAlchemy Core): rooms, members, rounds, answers; SQLite
                   by default, PostgreSQL by URL (several app processes share a room)
    activities.py  predict the next token, the class as the sampler, votes (Fleiss' kappa, the
                   preference export), shared math
    checks.py      quick checks whose answers are computed from the real models
    room.py        Classroom: who may do what (host key, student token), limits, the views' data
    plots.py       the projector and student views as HTML, the QR code
"""
